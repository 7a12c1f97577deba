"""Plugins the test suite registers the way users register theirs: ``plugins.<module>:<name>``
with tests/ on the path (pytest puts it there). Not ``tests.plugins``: opensimplex, a Crafter
dependency, installs an unrelated top-level ``tests`` package that would shadow this directory."""
