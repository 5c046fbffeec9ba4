"""The ``svconv`` command line: dispatches to the subcommands of svconv, bench, sweeps and analysis.

It sits on top of all four packages so that the core library never imports the others.
"""
