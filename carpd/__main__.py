from carpd.daemon.service.main import main

raise SystemExit(main())
