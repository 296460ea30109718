#include <assert.h>
#include "../calc.h"

int main(void)
{
    assert(mul(2, 3) == 6);
    return 0;
}
