"""Make a stack's resources in moto, one at a time, the way CloudFormation would.

``Provisioner(stack, clients).make(lid)`` resolves the resource's properties (everything it refers to
exists by then), makes it with the service's API and records what its ``Ref`` and ``Fn::GetAtt`` give
(moto's answers: ids, URLs, the stream's ARN). ``localcloud.cfn.deployer`` calls it in dependency order.

=================================  ==============================================================
CloudFormation type                what is made in moto
=================================  ==============================================================
AWS::DynamoDB::Table               the table (keys, billing, indexes, stream, SSE, tags) + TTL
AWS::S3::Bucket                    the bucket, encryption, public access block, ownership,
                                   versioning, lifecycle, CORS, tags (notifications: see
                                   ``localcloud.event_sources.sources``)
AWS::SNS::Topic                    the topic (attributes, tags, non-Lambda inline subscriptions)
AWS::SNS::Subscription             non-Lambda protocols; Lambda ones are event sources
AWS::SQS::Queue                    the queue and its attributes (redrive policy included)
AWS::Cognito::UserPool(Client)     the pool (policies, schema, ...) and its app clients
AWS::Cognito::UserPoolGroup        the group
AWS::Logs::LogGroup                the log group and its retention
AWS::CloudWatch::Alarm             the metric alarm (evaluated by ``localcloud.cloudwatch_alarms``)
=================================  ==============================================================

Functions, their versions and aliases are made in the local Lambda service by the deployer. IAM roles and
policies, Lambda permissions, API Gateway resources, event invoke configs, event source mappings, EventBridge
schedule rules and
CodeDeploy's application and deployment group are *read* (by the runtime, the local API, the event sources,
the deployer) but not made: moto would only store them (``READ_ELSEWHERE``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from localcloud.cfn.stack import Stack
from localcloud.sdk import Clients

log = logging.getLogger(__name__)

__all__ = ["READ_ELSEWHERE", "ProvisionError", "Provisioner"]

#: Types the local cloud reads elsewhere (or that need nothing locally): nothing is made for them.
READ_ELSEWHERE = frozenset(
    {
        "AWS::IAM::Role",
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::Lambda::Permission",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::Lambda::EventSourceMapping",
        "AWS::Events::Rule",  # schedule rules are run by localcloud.event_sources.schedules
        "AWS::Lambda::Version",
        "AWS::Lambda::Alias",
        "AWS::ApiGateway::RestApi",
        "AWS::ApiGateway::Stage",
        "AWS::ApiGateway::Deployment",
        "AWS::ApiGateway::Account",
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::S3::BucketPolicy",
        "AWS::CodeDeploy::Application",
        "AWS::CodeDeploy::DeploymentGroup",
    }
)


class ProvisionError(RuntimeError):
    """A resource could not be made in moto; names the resource and moto's reason."""


def _ints(value: Any, *keys: str) -> Any:
    if isinstance(value, dict):
        return {k: (int(v) if k in keys and v is not None else _ints(v, *keys)) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v, *keys) for v in value]
    return value


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


def _pick(props: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {k: props[k] for k in keys if k in props}


class Provisioner:
    """Makes one stack's moto-backed resources (``handlers``: by type) and records their names."""

    def __init__(self, stack: Stack, clients: Clients) -> None:
        self.stack = stack
        self.clients = clients
        self.handlers: dict[str, Callable[[str, dict], tuple[Any, dict] | None]] = {
            "AWS::DynamoDB::Table": self.table,
            "AWS::S3::Bucket": self.bucket,
            "AWS::SNS::Topic": self.topic,
            "AWS::SNS::Subscription": self.subscription,
            "AWS::SQS::Queue": self.queue,
            "AWS::Cognito::UserPool": self.user_pool,
            "AWS::Cognito::UserPoolClient": self.user_pool_client,
            "AWS::Cognito::UserPoolGroup": self.user_pool_group,
            "AWS::Logs::LogGroup": self.log_group,
            "AWS::CloudWatch::Alarm": self.alarm,
        }

    def makes(self, rtype: str) -> bool:
        return rtype in self.handlers or rtype in READ_ELSEWHERE

    def make(self, lid: str) -> None:
        """Make resource ``lid`` (nothing for a type in ``READ_ELSEWHERE``) and record its Ref and attributes."""
        rtype = self.stack.resource_type(lid)
        props = self.stack.properties(lid)
        predicted_ref, predicted_attrs = self.stack.predicted(lid, props)
        handler = self.handlers.get(rtype)
        made = None
        if handler is not None:
            try:
                made = handler(lid, props)
            except ProvisionError:
                raise
            except Exception as e:  # noqa: BLE001 - botocore errors of every kind
                raise ProvisionError(f"creating {lid} ({rtype}) in the local cloud failed: {e}") from e
        ref, attrs = made if made is not None else (predicted_ref, {})
        self.stack.record(lid, ref, {**predicted_attrs, **attrs})

    # ----------------------------------------------------------------- DynamoDB

    def table(self, lid: str, props: dict) -> tuple[Any, dict]:
        ddb = self.clients("dynamodb")
        name, _ = self.stack.predicted(lid, props)
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if kwargs["BillingMode"] == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = _ints(
                props.get("ProvisionedThroughput") or {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5},
                "ReadCapacityUnits", "WriteCapacityUnits",
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                kwargs[key] = _ints(props[key], "ReadCapacityUnits", "WriteCapacityUnits")
        stream = props.get("StreamSpecification") or {}
        if stream.get("StreamViewType"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        sse = props.get("SSESpecification") or {}
        if "SSEEnabled" in sse:
            kwargs["SSESpecification"] = {"Enabled": _bool(sse["SSEEnabled"]),
                                          **_pick(sse, "SSEType"),
                                          **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if sse.get("KMSMasterKeyId") else {})}
        if props.get("Tags"):
            kwargs["Tags"] = props["Tags"]
        if props.get("TableClass"):
            kwargs["TableClass"] = props["TableClass"]
        table = ddb.create_table(**kwargs)["TableDescription"]
        ttl = props.get("TimeToLiveSpecification")
        if ttl and _bool(ttl.get("Enabled")):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        attrs = {"Arn": table["TableArn"]}
        if table.get("LatestStreamArn"):
            attrs["StreamArn"] = table["LatestStreamArn"]
        return name, attrs

    # ----------------------------------------------------------------- S3

    def bucket(self, lid: str, props: dict) -> tuple[Any, dict]:
        s3 = self.clients("s3")
        name, _ = self.stack.predicted(lid, props)
        if self.stack.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.stack.region})
        encryption = props.get("BucketEncryption") or {}
        if encryption.get("ServerSideEncryptionConfiguration"):
            rules = [
                {("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k):
                 (_bool(v) if k == "BucketKeyEnabled" else v) for k, v in rule.items()}
                for rule in encryption["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if props.get("PublicAccessBlockConfiguration"):
            block = {k: _bool(v) for k, v in props["PublicAccessBlockConfiguration"].items()}
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)
        if props.get("OwnershipControls"):
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
        if props.get("VersioningConfiguration"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=_pick(props["VersioningConfiguration"], "Status"))
        rules = (props.get("LifecycleConfiguration") or {}).get("Rules") or []
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=name, LifecycleConfiguration={"Rules": [self._lifecycle_rule(r) for r in rules]}
            )
        cors = (props.get("CorsConfiguration") or {}).get("CorsRules") or []
        if cors:
            renames = {"ExposedHeaders": "ExposeHeaders", "MaxAge": "MaxAgeSeconds", "Id": "ID"}
            s3.put_bucket_cors(
                Bucket=name,
                CORSConfiguration={"CORSRules": [
                    {renames.get(k, k): (int(v) if k == "MaxAge" else v) for k, v in rule.items()} for rule in cors
                ]},
            )
        if props.get("Tags"):
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": props["Tags"]})
        return name, {}

    @staticmethod
    def _lifecycle_rule(rule: dict) -> dict:
        out: dict[str, Any] = {"Status": rule.get("Status", "Enabled")}
        if "Id" in rule:
            out["ID"] = rule["Id"]
        out["Filter"] = {"Prefix": rule.get("Prefix", "")}
        if "AbortIncompleteMultipartUpload" in rule:
            out["AbortIncompleteMultipartUpload"] = _ints(rule["AbortIncompleteMultipartUpload"], "DaysAfterInitiation")
        if "ExpirationInDays" in rule:
            out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
        if "NoncurrentVersionExpirationInDays" in rule:
            out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])}
        return out

    # ----------------------------------------------------------------- SNS, SQS

    def topic(self, lid: str, props: dict) -> tuple[Any, dict]:
        sns = self.clients("sns")
        arn, attrs = self.stack.predicted(lid, props)
        attributes = {}
        for key in ("DisplayName", "KmsMasterKeyId", "ContentBasedDeduplication", "FifoTopic", "SignatureVersion",
                    "TracingConfig"):
            if key in props:
                value = props[key]
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        kwargs: dict[str, Any] = {"Name": attrs["TopicName"], "Attributes": attributes}
        if props.get("Tags"):
            kwargs["Tags"] = props["Tags"]
        arn = sns.create_topic(**kwargs)["TopicArn"]
        for sub in props.get("Subscription") or []:
            if str(sub.get("Protocol", "")).lower() != "lambda":  # Lambda ones are event sources
                sns.subscribe(TopicArn=arn, Protocol=sub["Protocol"], Endpoint=sub["Endpoint"])
        return arn, {"TopicArn": arn, "TopicName": attrs["TopicName"]}

    def subscription(self, lid: str, props: dict) -> tuple[Any, dict] | None:
        if str(props.get("Protocol", "")).lower() == "lambda":
            return None  # localcloud.event_sources.sources delivers it
        attributes = {}
        for key in ("FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy", "DeliveryPolicy"):
            if key in props:
                value = props[key]
                attributes[key] = json.dumps(value) if isinstance(value, dict) else str(value).lower() \
                    if isinstance(value, bool) else str(value)
        arn = self.clients("sns").subscribe(
            TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"],
            Attributes=attributes, ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        return arn, {}

    def queue(self, lid: str, props: dict) -> tuple[Any, dict]:
        sqs = self.clients("sqs")
        _, predicted = self.stack.predicted(lid, props)
        attributes = {}
        for key, value in props.items():
            if key in ("QueueName", "Tags"):
                continue
            if isinstance(value, dict):
                attributes[key] = json.dumps(value)
            elif isinstance(value, bool):
                attributes[key] = str(value).lower()
            else:
                attributes[key] = str(value)
        kwargs: dict[str, Any] = {"QueueName": predicted["QueueName"], "Attributes": attributes}
        if props.get("Tags"):
            kwargs["tags"] = {t["Key"]: t["Value"] for t in props["Tags"]}
        url = sqs.create_queue(**kwargs)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, {"Arn": arn, "QueueName": predicted["QueueName"], "QueueUrl": url}

    # ----------------------------------------------------------------- Cognito

    def user_pool(self, lid: str, props: dict) -> tuple[Any, dict]:
        idp = self.clients("cognito-idp")
        kwargs = _pick(
            props,
            "Policies", "AutoVerifiedAttributes", "AliasAttributes", "UsernameAttributes", "Schema",
            "MfaConfiguration", "AccountRecoverySetting", "AdminCreateUserConfig", "DeviceConfiguration",
            "EmailConfiguration", "SmsConfiguration", "UsernameConfiguration", "UserAttributeUpdateSettings",
            "VerificationMessageTemplate", "DeletionProtection", "UserPoolAddOns", "EmailVerificationMessage",
            "EmailVerificationSubject", "SmsAuthenticationMessage", "SmsVerificationMessage",
        )
        kwargs = _ints(kwargs, "MinimumLength", "TemporaryPasswordValidityDays", "UnusedAccountValidityDays",
                       "Priority", "PasswordHistorySize")
        if props.get("UserPoolTags"):
            kwargs["UserPoolTags"] = props["UserPoolTags"]
        pool = idp.create_user_pool(PoolName=props.get("UserPoolName") or self.stack.generated_name(lid), **kwargs)
        pool_id = pool["UserPool"]["Id"]
        provider = f"cognito-idp.{self.stack.region}.{self.stack.url_suffix}/{pool_id}"
        return pool_id, {
            "Arn": pool["UserPool"]["Arn"],
            "ProviderName": provider,
            "ProviderURL": f"https://{provider}",
            "UserPoolId": pool_id,
        }

    def user_pool_client(self, lid: str, props: dict) -> tuple[Any, dict]:
        idp = self.clients("cognito-idp")
        kwargs = _pick(
            props,
            "GenerateSecret", "ExplicitAuthFlows", "PreventUserExistenceErrors", "RefreshTokenValidity",
            "AccessTokenValidity", "IdTokenValidity", "TokenValidityUnits", "ReadAttributes", "WriteAttributes",
            "AllowedOAuthFlows", "AllowedOAuthScopes", "AllowedOAuthFlowsUserPoolClient", "CallbackURLs",
            "LogoutURLs", "DefaultRedirectURI", "SupportedIdentityProviders", "EnableTokenRevocation",
            "AuthSessionValidity", "EnablePropagateAdditionalUserContextData",
        )
        for key in ("GenerateSecret", "AllowedOAuthFlowsUserPoolClient", "EnableTokenRevocation",
                    "EnablePropagateAdditionalUserContextData"):
            if key in kwargs:
                kwargs[key] = _bool(kwargs[key])
        kwargs = _ints(kwargs, "RefreshTokenValidity", "AccessTokenValidity", "IdTokenValidity", "AuthSessionValidity")
        client = idp.create_user_pool_client(
            UserPoolId=props["UserPoolId"], ClientName=props.get("ClientName") or lid, **kwargs
        )["UserPoolClient"]
        attrs = {"ClientId": client["ClientId"], "Name": client["ClientName"]}
        if client.get("ClientSecret"):
            attrs["ClientSecret"] = client["ClientSecret"]
        return client["ClientId"], attrs

    def user_pool_group(self, lid: str, props: dict) -> tuple[Any, dict]:
        name = props.get("GroupName") or self.stack.generated_name(lid)
        self.clients("cognito-idp").create_group(
            UserPoolId=props["UserPoolId"], GroupName=name,
            **_ints(_pick(props, "Description", "Precedence", "RoleArn"), "Precedence"),
        )
        return name, {}

    # ----------------------------------------------------------------- Logs, Lambda

    def log_group(self, lid: str, props: dict) -> tuple[Any, dict]:
        name, attrs = self.stack.predicted(lid, props)
        logs = self.clients("logs")
        logs.create_log_group(logGroupName=name)
        if props.get("RetentionInDays"):
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        return name, attrs

    def alarm(self, lid: str, props: dict) -> tuple[Any, dict]:
        name = props.get("AlarmName") or self.stack.generated_name(lid)
        kwargs = _pick(props, "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
                       "InsufficientDataActions", "MetricName", "Namespace", "Statistic", "ExtendedStatistic",
                       "Dimensions", "Period", "Unit", "EvaluationPeriods", "DatapointsToAlarm", "Threshold",
                       "ComparisonOperator", "TreatMissingData", "EvaluateLowSampleCountPercentile", "Metrics",
                       "ThresholdMetricId")
        kwargs = _ints(kwargs, "Period", "EvaluationPeriods", "DatapointsToAlarm")
        if "Threshold" in kwargs:
            kwargs["Threshold"] = float(kwargs["Threshold"])
        if "ActionsEnabled" in kwargs:
            kwargs["ActionsEnabled"] = _bool(kwargs["ActionsEnabled"])
        self.clients("cloudwatch").put_metric_alarm(AlarmName=name, **kwargs)
        return name, {"Arn": self.stack.arn("cloudwatch", f"alarm:{name}")}
