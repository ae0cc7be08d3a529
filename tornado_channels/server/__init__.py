"""The standalone server: the command line, its HTTP/1.1 wire and accept loop."""
