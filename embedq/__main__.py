from embedq.cli import main

main()
