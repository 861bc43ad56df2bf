"""One module per CLI sub-command; see ``medpeft.cli``."""
