// SPDX-License-Identifier: MIT
package org.pimoe;

/**
 * A failed libpimoe call: the library's status code and its message with context, e.g. {@code top_k (9) exceeds
 * num_experts (8)}. The message is read inside the same native call that failed, on the same thread.
 */
public class PimoeException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final int code;

  /** Called from the native wrapper (signature {@code (ILjava/lang/String;)V}) and by the Java layer. */
  public PimoeException(int code, String message) {
    super(message);
    this.code = code;
  }

  PimoeException(Status status, String message) {
    this(status.code(), message);
  }

  /** The status as the library's enum constant, or null for a code this binding does not know. */
  public Status status() {
    for (Status s : Status.values()) {
      if (s.code() == code) {
        return s;
      }
    }
    return null;
  }

  /** The numeric status code ({@code pimoe_status}). */
  public int code() {
    return code;
  }

  @Override
  public String toString() {
    Status s = status();
    return "PimoeException[" + (s != null ? s.name() : Integer.toString(code)) + "]: " + getMessage();
  }
}
