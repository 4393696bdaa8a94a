#include <stdio.h>

int main(void)
{
	puts("about to fail");
	fputs("something went wrong\n", stderr);
	return 3;
}
