from carpd.daemon.main import main

raise SystemExit(main())
