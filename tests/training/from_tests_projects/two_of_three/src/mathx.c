#include "mathx.h"

/* Sum of a and b. */
int mathx_add(int a, int b)
{
    return a + b;
}

/* Product of a and b. */
int mathx_mul(int a, int b)
{
    int product = a * b;
    return product;
}

/* v limited to [lo, hi]. */
int mathx_clamp(int v, int lo, int hi)
{
    if (v < lo)
        return lo;
    if (v > hi)
        return hi;
    return v;
}
