/* Cortex-M4 startup for the mps2-an386 board: vector table, FPU on, .data copied from flash, .bss zeroed, main. */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss; /* from mps2-an386.ld */
extern int main(void);
extern void initialise_monitor_handles(void); /* newlib's semihosting (librdimon): printf reaches the host */

void Reset_Handler(void);
/* newlib's exit calls them; the crt files that define them are not linked (-nostartfiles) */
void _init(void) {}
void _fini(void) {}
static void Fault_Handler(void) { for (;;) {} }

/* the initial stack pointer, then the handlers: reset, NMI, hard fault, memory, bus, usage fault */
__attribute__((section(".isr_vector"), used)) static const void *const vectors[16] = {
    &_estack, (void *)Reset_Handler, (void *)Fault_Handler, (void *)Fault_Handler,
    (void *)Fault_Handler, (void *)Fault_Handler, (void *)Fault_Handler};

void Reset_Handler(void) {
  uint32_t *src = &_sidata, *dst;
  /* CPACR: full access to coprocessors 10 and 11 (the FPU) before any float instruction runs */
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
  __asm__ volatile("dsb\n\tisb");
  for (dst = &_sdata; dst < &_edata;) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
  initialise_monitor_handles();
  exit(main());
}
