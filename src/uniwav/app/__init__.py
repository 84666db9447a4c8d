"""User-facing applications built on the library: the local web page (``uniwav serve``)."""
