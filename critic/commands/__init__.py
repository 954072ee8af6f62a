"""One module per `critic` command group; each is thin and calls library functions."""
