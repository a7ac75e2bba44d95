from carpd.ctl.main import main

raise SystemExit(main())
