#include <assert.h>
#include "../calc.h"

int main(void)
{
    assert(add(2, 3) == 5);
    assert(add(-4, 4) == 0);
    return 0;
}
