"""The pinned moto server (tests/requirements-moto.txt) with one gap filled,
for the deploy tests only: moto 5.2.5 keeps a function's Architectures from
CreateFunction but ignores it in UpdateFunctionCode and in CloudFormation's
AWS::Lambda::Function (moto/awslambda/models.py: update_function_code and
create_from_cloudformation_json never read it), where real Lambda applies
it. Without this a test could not tell arm64 from the x86_64 default.
Everything else is moto as installed. Arguments are moto_server's."""

import sys

from moto.awslambda import models
from moto.server import main

_update_code = models.LambdaFunction.update_function_code
_from_cfn = models.LambdaFunction.create_from_cloudformation_json.__func__


def update_function_code(self, updated_spec):
    if "Architectures" in updated_spec:
        self.architectures = updated_spec["Architectures"]
    return _update_code(self, updated_spec)


def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
    fn = _from_cfn(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
    if "Architectures" in cloudformation_json.get("Properties", {}):
        fn.architectures = cloudformation_json["Properties"]["Architectures"]
    return fn


models.LambdaFunction.update_function_code = update_function_code
models.LambdaFunction.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
