class UserError(Exception):
    """A problem with the user's input: the CLI prints the message on one line and exits with code 2.

    The message names the file or setting at fault and says how to fix it.
    """
