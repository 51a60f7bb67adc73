"""The application: settings, the command-line tool and the Discord bot."""
