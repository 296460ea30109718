#include <assert.h>
#include "../calc.h"

/* The suite does not build on the unchanged tree: it calls a helper nobody defines. */
int main(void)
{
    assert(add(2, 3) == 5);
    assert(add_three(1, 2, 3) == 6);
    return 0;
}
