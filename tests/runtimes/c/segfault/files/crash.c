#include <stdio.h>

int main(void)
{
	volatile int *p = NULL;

	fputs("before\n", stderr);
	*p = 42;
	puts("never printed");
	return 0;
}
