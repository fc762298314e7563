/*
 * tether/protocol.h: the constants of tether's provider protocol (SPEC
 * sections 3 to 5): its version, its error codes and its method names.
 */
#ifndef TETHER_PROTOCOL_H
#define TETHER_PROTOCOL_H

#define TETHER_PROTOCOL_VERSION 1

/* JSON-RPC 2.0 standard errors. */
#define TETHER_ERR_PARSE -32700
#define TETHER_ERR_INVALID_REQUEST -32600
#define TETHER_ERR_METHOD_NOT_FOUND -32601
#define TETHER_ERR_INVALID_PARAMS -32602
#define TETHER_ERR_INTERNAL -32603

/* tether's own. */
#define TETHER_ERR_FAILED -32000 /* any other failure; message says what */
#define TETHER_ERR_UNKNOWN_TYPE -32001
#define TETHER_ERR_NOT_INITIALIZED -32002
#define TETHER_ERR_REQUIRES_STATE -32010
#define TETHER_ERR_UNSUPPORTED -32011
#define TETHER_ERR_STATE_LOCKED -32020
#define TETHER_ERR_STATE_CONFLICT -32021
#define TETHER_ERR_STATE_CORRUPT -32022
#define TETHER_ERR_NOT_FOUND -32030
#define TETHER_ERR_CANCELLED -32800

/* A short name for a code ("invalid params", "state store locked"), or
 * NULL for a code this protocol does not define. */
const char *tether_error_name(int code);

#endif /* TETHER_PROTOCOL_H */
