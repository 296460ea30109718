#include "pt.h"

/* The point (x, y). */
struct pt pt_make(int x, int y)
{
    struct pt p = { x, y };
    return p;
}

/* x + y of p. */
int pt_sum(struct pt p)
{
    return p.x + p.y;
}
