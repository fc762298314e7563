/*
 * errors.c: the names of the protocol's error codes, for messages.
 */
#include <stddef.h>

#include "tether/protocol.h"

const char *tether_error_name(int code) {
  switch (code) {
  case TETHER_ERR_PARSE:
    return "parse error";
  case TETHER_ERR_INVALID_REQUEST:
    return "invalid request";
  case TETHER_ERR_METHOD_NOT_FOUND:
    return "method not found";
  case TETHER_ERR_INVALID_PARAMS:
    return "invalid params";
  case TETHER_ERR_INTERNAL:
    return "internal error";
  case TETHER_ERR_FAILED:
    return "operation failed";
  case TETHER_ERR_UNKNOWN_TYPE:
    return "unknown resource type";
  case TETHER_ERR_NOT_INITIALIZED:
    return "not initialized";
  case TETHER_ERR_REQUIRES_STATE:
    return "resource type requires state";
  case TETHER_ERR_UNSUPPORTED:
    return "operation not supported";
  case TETHER_ERR_STATE_LOCKED:
    return "state store locked";
  case TETHER_ERR_STATE_CONFLICT:
    return "state index conflict";
  case TETHER_ERR_STATE_CORRUPT:
    return "state store corrupt";
  case TETHER_ERR_NOT_FOUND:
    return "resource not found";
  case TETHER_ERR_CANCELLED:
    return "request cancelled";
  }
  return NULL;
}
