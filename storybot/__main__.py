from storybot.cli import main

main()
