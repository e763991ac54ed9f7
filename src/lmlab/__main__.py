from lmlab.cli.main import main

main()
