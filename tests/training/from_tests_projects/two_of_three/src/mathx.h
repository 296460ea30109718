#ifndef MATHX_H
#define MATHX_H

/* Sum of a and b. */
int mathx_add(int a, int b);

/* Product of a and b. */
int mathx_mul(int a, int b);

/* v limited to [lo, hi]. */
int mathx_clamp(int v, int lo, int hi);

#endif
