"""The recommendation pipeline as stages, each taking the previous stage's typed hand-off and returning the next."""
