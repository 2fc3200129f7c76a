"""The command layer: the only code that knows about the command line.

:mod:`rckd.cli` is the entry point (verbs, parser, one-line errors);
:mod:`~rckd.commands.arguments` builds each verb's options from its config declarations and
resolves a command line into a config; :mod:`~rckd.commands.verbs` calls the library and prints.
Nothing below this layer parses arguments or prints results.
"""
