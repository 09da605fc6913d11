"""One module per `dlnet` verb (day-2 operations); cli.py registers them."""
