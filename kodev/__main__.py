from kodev.cli import main

main()
