"""The gateway's error tree, rendered once in the OpenAI error shape.

    GatewayError                      status  type                    code
    ├── BadRequest                    400     invalid_request_error   (varies)
    │   └── PayloadTooLarge           413     invalid_request_error   request_too_large
    ├── AuthenticationError           401     authentication_error    invalid_api_key, key_expired
    ├── PermissionDenied              403     permission_error        model_not_priced
    ├── NotFound                      404     invalid_request_error   not_found
    │   └── ModelNotFound             404     invalid_request_error   model_not_found
    ├── Conflict                      409     invalid_request_error   conflict
    ├── QuotaExceeded                 429     insufficient_quota      insufficient_quota
    ├── ThrottledError                429     rate_limit_error        rate_limit_exceeded
    ├── UpstreamError                 502     upstream_error          bad_gateway
    │   └── UpstreamTimeout           504     upstream_error          gateway_timeout
    └── ServiceUnavailable            503     service_unavailable     service_unavailable

Every error leaves through `error_body`, so SDKs see `{"error": {...}}` and raise the matching
exception. Messages are written for the client and never carry a secret or a stack trace.
"""

from __future__ import annotations

import orjson


class GatewayError(Exception):
    status = 500
    type = "server_error"
    code: str | None = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param

    def body(self) -> bytes:
        return error_body(self.message, self.type, self.code, self.param)


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "request_too_large"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_priced"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class QuotaExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class ThrottledError(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "gateway_timeout"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> bytes:
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "code": code, "param": param}}
    )
