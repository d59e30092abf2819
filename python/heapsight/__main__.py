from heapsight._cli import main

main()
