"""A stand-in provider plugin: serves a rebuilt schema to a real Terraform core over the plugin protocol (v6).

Terraform starts it as it would start ``terraform-provider-aws`` (go-plugin handshake on
stdout, gRPC over a unix socket with TLS). It answers what ``terraform validate`` asks:
the schema, and per-resource validation, where it rejects a value set on a read-only
(computed-only) attribute, as real providers do and as Terraform's own checks do not.
Nothing is ever created: plan, apply and read are not offered.

    python -m tfcheck.provider SCHEMA_FILE     # SCHEMA_FILE: GetProviderSchema.Response bytes
    python -m tfcheck.provider --reattach SCHEMA_FILE   # one process for many commands (core.serving)
"""

from __future__ import annotations

import base64
import datetime
import json
import signal
import sys
import tempfile
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import msgpack
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tf.gen import grpc_controller_pb2, grpc_controller_pb2_grpc, grpc_stdio_pb2_grpc
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc

_NESTING = {
    "single": pb.Schema.NestedBlock.NestingMode.SINGLE,
    "list": pb.Schema.NestedBlock.NestingMode.LIST,
    "set": pb.Schema.NestedBlock.NestingMode.SET,
    "map": pb.Schema.NestedBlock.NestingMode.MAP,
}


def _block_pb(block: dict[str, Any]) -> pb.Schema.Block:
    attributes = [
        pb.Schema.Attribute(
            name=name,
            type=json.dumps(attribute["type"]).encode(),
            required=attribute.get("required", False),
            optional=attribute.get("optional", False),
            computed=attribute.get("computed", False),
        )
        for name, attribute in sorted(block.get("attributes", {}).items())
    ]
    block_types = [
        pb.Schema.NestedBlock(
            type_name=name,
            block=_block_pb(nested["block"]),
            nesting=_NESTING[nested["nesting_mode"]],
            min_items=nested.get("min_items", 0),
            max_items=nested.get("max_items", 0),
        )
        for name, nested in sorted(block.get("block_types", {}).items())
    ]
    return pb.Schema.Block(attributes=attributes, block_types=block_types)


def schema_response(schema: dict[str, Any]) -> bytes:
    """The serialized ``GetProviderSchema.Response`` for a ``providers schema -json``-shaped schema."""

    def schemas(kind: str) -> dict[str, pb.Schema]:
        return {name: pb.Schema(version=entry.get("version", 0), block=_block_pb(entry["block"])) for name, entry in schema[kind].items()}

    response = pb.GetProviderSchema.Response(
        provider=pb.Schema(block=_block_pb(schema["provider"]["block"])),
        resource_schemas=schemas("resource_schemas"),
        data_source_schemas=schemas("data_source_schemas"),
        server_capabilities=pb.ServerCapabilities(plan_destroy=True),
    )
    return response.SerializeToString()


def _decode(value: pb.DynamicValue) -> Any:
    """A config value as Python data; unknown values (msgpack extension 0) become ``...``."""
    if value.json:
        return json.loads(value.json)
    return msgpack.unpackb(value.msgpack, ext_hook=lambda code, data: ..., raw=False, strict_map_key=False)


def read_only_paths(block: pb.Schema.Block, config: Any, path: tuple = ()) -> list[tuple]:
    """Attribute paths in ``config`` that set a computed-only attribute of ``block``."""
    if not isinstance(config, dict):
        return []
    found = [
        (*path, attribute.name)
        for attribute in block.attributes
        if attribute.computed and not attribute.optional and not attribute.required and config.get(attribute.name) is not None
    ]
    for nested in block.block_types:
        value = config.get(nested.type_name)
        if isinstance(value, list):
            for index, item in enumerate(value):
                found += read_only_paths(nested.block, item, (*path, nested.type_name, index))
        elif isinstance(value, dict) and nested.nesting == pb.Schema.NestedBlock.NestingMode.MAP:
            for key, item in value.items():
                found += read_only_paths(nested.block, item, (*path, nested.type_name, MapKey(key)))
        elif isinstance(value, dict):
            found += read_only_paths(nested.block, value, (*path, nested.type_name))
    return found


class MapKey(str):
    """A map key in an attribute path (an attribute name is a plain ``str``, a list index an ``int``)."""


def _attribute_path(path: tuple) -> pb.AttributePath:
    def step(item: object) -> pb.AttributePath.Step:
        if isinstance(item, int):
            return pb.AttributePath.Step(element_key_int=item)
        if isinstance(item, MapKey):
            return pb.AttributePath.Step(element_key_string=item)
        return pb.AttributePath.Step(attribute_name=item)

    return pb.AttributePath(steps=[step(item) for item in path])


class SchemaProvider(rpc.ProviderServicer):
    """Serves one provider's schema and validates configurations against what it cannot accept."""

    def __init__(self, response: bytes) -> None:
        self.response = pb.GetProviderSchema.Response.FromString(response)

    def GetMetadata(self, request, context):
        return pb.GetMetadata.Response(
            server_capabilities=self.response.server_capabilities,
            resources=[pb.GetMetadata.ResourceMetadata(type_name=name) for name in self.response.resource_schemas],
            data_sources=[pb.GetMetadata.DataSourceMetadata(type_name=name) for name in self.response.data_source_schemas],
        )

    def GetProviderSchema(self, request, context):
        return self.response

    def ValidateProviderConfig(self, request, context):
        return pb.ValidateProviderConfig.Response()

    def _validate(self, schemas, type_name: str, config: pb.DynamicValue) -> list[pb.Diagnostic]:
        block = schemas[type_name].block
        return [
            pb.Diagnostic(
                severity=pb.Diagnostic.ERROR,
                summary="Value for unconfigurable attribute",
                detail=f'Can\'t configure a value for "{".".join(str(step) for step in path)}": its value will be decided automatically based on the result of applying this configuration.',
                attribute=_attribute_path(path),
            )
            for path in read_only_paths(block, _decode(config))
        ]

    def ValidateResourceConfig(self, request, context):
        return pb.ValidateResourceConfig.Response(diagnostics=self._validate(self.response.resource_schemas, request.type_name, request.config))

    def ValidateDataResourceConfig(self, request, context):
        return pb.ValidateDataResourceConfig.Response(
            diagnostics=self._validate(self.response.data_source_schemas, request.type_name, request.config)
        )

    def UpgradeResourceState(self, request, context):
        return pb.UpgradeResourceState.Response(upgraded_state=pb.DynamicValue(json=request.raw_state.json or b"null"))

    def GetFunctions(self, request, context):
        return pb.GetFunctions.Response()

    def StopProvider(self, request, context):
        return pb.StopProvider.Response()


def _certificate() -> tuple[bytes, bytes, bytes]:
    """(certificate DER, certificate PEM, key PEM) of a throw-away self-signed certificate for localhost,
    which go-plugin pins from the handshake line."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.DER), certificate.public_bytes(serialization.Encoding.PEM), key_pem


class _Controller(grpc_controller_pb2_grpc.GRPCControllerServicer):
    def __init__(self, stopped: futures.Future) -> None:
        self.stopped = stopped

    def Shutdown(self, request, context):
        self.stopped.set_result(True)
        return grpc_controller_pb2.Empty()


class _Stdio(grpc_stdio_pb2_grpc.GRPCStdioServicer):
    def StreamStdio(self, request, context):
        return iter(())


def serve(schema_file: Path, *, reattach: bool = False) -> None:
    """Run the plugin until Terraform shuts it down: handshake line on stdout, gRPC on a unix socket.

    ``reattach``: serve every Terraform command that names this process in ``TF_REATTACH_PROVIDERS``
    (go-plugin's test mode: plain gRPC, as go-plugin's reattach carries no certificate; no command
    stops it) until SIGTERM."""
    stopped: futures.Future = futures.Future()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rpc.add_ProviderServicer_to_server(SchemaProvider(schema_file.read_bytes()), server)
    grpc_controller_pb2_grpc.add_GRPCControllerServicer_to_server(_Controller(futures.Future() if reattach else stopped), server)
    grpc_stdio_pb2_grpc.add_GRPCStdioServicer_to_server(_Stdio(), server)
    if reattach:
        signal.signal(signal.SIGTERM, lambda *_: stopped.set_result(True))
    with tempfile.TemporaryDirectory(prefix="tfcheck-plugin-") as folder:
        socket = f"{folder}/plugin.sock"
        if reattach:
            server.add_insecure_port(f"unix://{socket}")
            certificate = ""
        else:
            der, cert_pem, key_pem = _certificate()
            server.add_secure_port(f"unix://{socket}", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
            certificate = base64.b64encode(der).decode().rstrip("=")
        server.start()
        print(f"1|6|unix|{socket}|grpc|{certificate}", flush=True)
        try:
            stopped.result()
        except KeyboardInterrupt:
            pass
        server.stop(grace=0.2)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--reattach"]:
        serve(Path(sys.argv[2]), reattach=True)
    else:
        serve(Path(sys.argv[1]))
