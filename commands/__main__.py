from commands.cli import main

# `python -m commands` is the `tunepool` console script without an install (tests, bench).
main(prog_name="tunepool")
