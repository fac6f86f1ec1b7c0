from modelshelf.cli import main

main()
