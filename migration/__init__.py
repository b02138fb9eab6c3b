"""The core of aws2azure, shared by the AWS and Azure sides.

Nothing here imports a cloud SDK: the migration state machine, the event contract, the tag
vocabulary, the error hierarchy and the ports the adapters implement.
"""
