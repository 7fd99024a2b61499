"""The stack's settings documented from one source: the pydantic settings classes.

`make docs` (`python -m settings_docs`) writes `.env.example` and the settings
table of `docs/configuration.md` from the producer's and consumer's settings classes
and from `settings_docs.stack`, which declares the variables only Compose reads (ports,
LocalStack, the cluster and notebook profiles). A default is the field's
default, or the `stack_default` it names where the stack's differs from the
class's (the class's own suits a run outside the containers).
"""
