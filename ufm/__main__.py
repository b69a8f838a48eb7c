from ufm.cli import main

raise SystemExit(main())
