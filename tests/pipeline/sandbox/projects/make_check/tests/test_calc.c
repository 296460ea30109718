#include <stdio.h>
#include "calc.h"
int main(void) {
    int bad = 0;
    if (add(2, 3) != 5) { puts("FAIL add"); bad = 1; }
    if (sub(5, 3) != 2) { puts("FAIL sub"); bad = 1; }
    return bad;
}
