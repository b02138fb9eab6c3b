"""A local stand-in for AWS Systems Manager (Run Command and managed-node inventory) that plays the ASR appliance.

moto's SSM records SendCommand, answers every invocation Success and has no DescribeInstanceInformation, so the
local stack runs this instead for the operations the Lambdas call (AWS_ENDPOINT_URL_SSM points boto3 at it).
Shapes and limits from botocore's ssm service model (botocore/data/ssm/2014-11-06/service-2.json); see docs/AWS.md.
"""
