from aws2azure.cli import main

main()
