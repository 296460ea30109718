#include <stdio.h>
#include "../src/pt.h"

int main(void)
{
    struct pt p = pt_make(2, 3);
    if (p.x != 2 || p.y != 3) { printf("FAIL: pt_make\n"); return 1; }
    if (pt_sum(p) != 5) { printf("FAIL: pt_sum\n"); return 1; }
    return 0;
}
