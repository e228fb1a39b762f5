"""The exception the kit's faults raise when a test names none."""


class InjectedFault(Exception):
    """Raised by ``faults.crash`` when no ``exc`` is given, and the cause of the
    JournalWriteError ``faults.fail_journal`` raises when no ``error`` is given."""
