// SPDX-License-Identifier: MIT
package org.pimoe;

/** The resolved spec of one expert: activation, intermediate width, pre-LayerNorm. */
public final class ExpertSpec {
  public final Activation activation;
  public final long intermediate;
  public final boolean preNorm;

  ExpertSpec(Activation activation, long intermediate, boolean preNorm) {
    this.activation = activation;
    this.intermediate = intermediate;
    this.preNorm = preNorm;
  }

  @Override
  public String toString() {
    return "ExpertSpec{" + activation + ", intermediate=" + intermediate + ", preNorm=" + preNorm + "}";
  }
}
