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

/* A bug the project already has: its test fails on the unchanged tree, whatever happens to add. */
int mul(int a, int b)
{
    return a + b;
}
