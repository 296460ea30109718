#include <iostream>
#include "calc.h"
int main() {
    if (add(2, 3) != 5) { std::cout << "FAIL add" << std::endl; return 1; }
    if (sub(5, 3) != 2) { std::cout << "FAIL sub" << std::endl; return 1; }
    std::cout << "ok" << std::endl;
    return 0;
}
