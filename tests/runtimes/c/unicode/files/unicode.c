#include <stdio.h>
#include <string.h>

int main(void)
{
	const char *s = "日本語";

	puts("héllo wörld ✓ 日本語 🎉");
	printf("bytes=%zu\n", strlen(s));
	return 0;
}
