"""The AWS side of aws2azure: Lambdas that check, tag, schedule and emit, with Powertools.

``handlers`` are the entry points the SAM template names; ``logic`` holds what they do; ``adapters``
wrap one SDK each; ``models`` are the inputs and outputs; ``bootstrap`` wires them once per container.
"""
