"""carpd's exit statuses (carpd(8) EXIT STATUS), shared by the command line and the
running daemon, so neither imports the other for them."""

EXIT_ENVIRONMENT = 1  # a capability or the host is missing something carpd needs
EXIT_CONFIG = 2  # the configuration is refused (or the network it names is not there)
