from vggedge.cli import main

main()
