from p2pdetect.cli import main

raise SystemExit(main())
