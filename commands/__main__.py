from tunepool.cli import main

main()
