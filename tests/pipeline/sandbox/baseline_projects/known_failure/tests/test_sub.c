#include <assert.h>
#include "../calc.h"

int main(void)
{
    assert(sub(5, 3) == 2);
    return 0;
}
