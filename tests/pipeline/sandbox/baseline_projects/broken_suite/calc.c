#include "calc.h"

/** Returns the sum of a and b. */
int add(int a, int b)
{
    return 0;
}

int sub(int a, int b)
{
    return a - b;
}
