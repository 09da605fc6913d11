from dlnet.cli import main

raise SystemExit(main())
