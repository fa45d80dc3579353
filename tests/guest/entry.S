/*
 * Test guest entry: the PVH note, the 32-bit PVH entry that switches to long
 * mode on static identity page tables (0-4 GiB, 2M pages, user-accessible),
 * the ring-3 call/return path (return by int3), exception stubs, and the AP
 * start-up trampoline (16-bit real mode -> 64-bit), copied below 1 MiB.
 */
#define SEL_CODE64 0x08
#define SEL_DATA 0x10
#define SEL_UDATA 0x1b /* 0x18 | RPL 3 */
#define SEL_UCODE64 0x23 /* 0x20 | RPL 3 */
#define SEL_CODE32 0x38
#define PTE_FLAGS 0x87 /* present, writable, user, 2M page */
#define TABLE_FLAGS 0x07 /* present, writable, user */
#define AP_TRAMPOLINE 0x9000

	/* XEN_ELFNOTE_PHYS32_ENTRY with an 8-byte descriptor (QEMU reads 8 bytes for ELF64). */
	.section .note.pvh, "a"
	.balign 4
	.long 4, 8, 18
	.asciz "Xen"
	.balign 4
	.quad pvh_start32
	.balign 4

	.section .data.pagetables, "aw"
	.balign 4096
	.globl boot_pml4, boot_pdpt, boot_pd
boot_pml4:
	.quad boot_pdpt + TABLE_FLAGS
	.fill 511, 8, 0
boot_pdpt:
	.quad boot_pd + TABLE_FLAGS
	.quad boot_pd + 0x1000 + TABLE_FLAGS
	.quad boot_pd + 0x2000 + TABLE_FLAGS
	.quad boot_pd + 0x3000 + TABLE_FLAGS
	.fill 508, 8, 0
boot_pd:
	.set i, 0
	.rept 2048
	.quad (i << 21) + PTE_FLAGS
	.set i, i + 1
	.endr

	.section .data
	.balign 16
	.globl gdt
gdt:
	.quad 0                     /* 0x00 */
	.quad 0x00af9a000000ffff    /* 0x08 kernel code, 64-bit */
	.quad 0x00cf92000000ffff    /* 0x10 kernel data */
	.quad 0x00cff2000000ffff    /* 0x18 user data */
	.quad 0x00affa000000ffff    /* 0x20 user code, 64-bit */
	.quad 0, 0                  /* 0x28 TSS, filled in by C */
	.quad 0x00cf9a000000ffff    /* 0x38 kernel code, 32-bit (AP start-up) */
gdt_end:
	.globl gdt_ptr
gdt_ptr:
	.word gdt_end - gdt - 1
	.quad gdt

	.section .bss
	.balign 16
	.space 16384
boot_stack_top:

	.section .text.entry, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	mov %ebx, %esi              /* hvm_start_info */
	mov $boot_stack_top, %esp
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $0x20, %eax              /* PAE */
	mov %eax, %cr4
	mov $0xc0000080, %ecx       /* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax        /* PG | PE */
	and $0x9fffffff, %eax       /* caches on: clear CD and NW */
	mov %eax, %cr0
	lgdt gdt_ptr
	ljmp $SEL_CODE64, $long_entry

	.code64
long_entry:
	mov $SEL_DATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov %ax, %fs
	mov %ax, %gs
	mov $boot_stack_top, %rsp
	mov %esi, %edi
	call guest_main
1:	cli
	hlt
	jmp 1b

/*
 * long run_user(long (*fn)(long), long arg): call fn(arg) in ring 3 and
 * return its result. Ring 3 comes back with int3; the #BP handler restores
 * the context saved here.
 */
	.text
	.globl run_user
run_user:
	push %rbp
	push %rbx
	push %r12
	push %r13
	push %r14
	push %r15
	mov %rsp, kernel_rsp(%rip)
	mov user_stack_top(%rip), %rax
	pushq $SEL_UDATA
	pushq %rax
	pushq $0x3002               /* IOPL 3: ring 3 may use ports (serial, exit) */
	pushq $SEL_UCODE64
	leaq user_trampoline(%rip), %rax
	pushq %rax
	iretq

user_trampoline:
	mov %rdi, %rax
	mov %rsi, %rdi
	call *%rax
	int3

/* Vector 3 from ring 3: the user function is done, its result is in %rax. */
	.globl bp_entry
bp_entry:
	testb $3, 8(%rsp)           /* CS of the interrupted code */
	jz exc_bp_kernel
	mov kernel_rsp(%rip), %rsp
	pop %r15
	pop %r14
	pop %r13
	pop %r12
	pop %rbx
	pop %rbp
	ret
exc_bp_kernel:
	pushq $0
	pushq $3
	jmp exc_common

/* Exceptions: push a dummy error code where the CPU pushes none, then the vector. */
.macro EXC_NOERR n
	.globl exc\n
exc\n:
	pushq $0
	pushq $\n
	jmp exc_common
.endm
.macro EXC_ERR n
	.globl exc\n
exc\n:
	pushq $\n
	jmp exc_common
.endm
	EXC_NOERR 0
	EXC_NOERR 1
	EXC_NOERR 2
	EXC_NOERR 4
	EXC_NOERR 5
	EXC_NOERR 6
	EXC_NOERR 7
	EXC_ERR 8
	EXC_NOERR 9
	EXC_ERR 10
	EXC_ERR 11
	EXC_ERR 12
	EXC_ERR 13
	EXC_ERR 14
	EXC_NOERR 15
	EXC_NOERR 16
	EXC_ERR 17
	EXC_NOERR 18
	EXC_NOERR 19
	EXC_NOERR 20
	/* Anything else (spurious or unexpected interrupts) */
	.globl exc_other
exc_other:
	pushq $0
	pushq $255
	jmp exc_common

exc_common:
	mov %rsp, %rdi              /* vector, error, rip, cs, rflags, rsp, ss */
	and $-16, %rsp
	call exception              /* does not return */
1:	cli
	hlt
	jmp 1b

/* Device interrupts (idle and virtio workloads): save what C may clobber, call the handler, return. */
.macro IRQ_STUB name, handler
	.globl \name
\name:
	push %rax
	push %rcx
	push %rdx
	push %rsi
	push %rdi
	push %r8
	push %r9
	push %r10
	push %r11
	call \handler
	pop %r11
	pop %r10
	pop %r9
	pop %r8
	pop %rdi
	pop %rsi
	pop %rdx
	pop %rcx
	pop %rax
	iretq
.endm
	IRQ_STUB irq_timer, irq_timer_c
	IRQ_STUB irq_keyboard, irq_keyboard_c
	/* virtio (irq=1): the device's interrupt, the LAPIC timer's wake-up, spurious ones */
	IRQ_STUB irq_virtio, irq_virtio_c
	IRQ_STUB irq_wake, irq_wake_c
	IRQ_STUB irq_spurious, irq_spurious_c

/* APs arrive here in long mode from the trampoline. */
	.globl ap_entry64
ap_entry64:
	mov $SEL_DATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	mov $1, %eax
	lock xadd %eax, ap_ticket(%rip)
	mov %eax, %edi              /* the AP's index from 1 */
	mov %rax, %rbx
	shl $12, %rbx
	lea ap_stacks(%rip), %rsp
	add %rbx, %rsp
	add $4096, %rsp
	call ap_main
1:	cli
	hlt
	jmp 1b

	.section .bss
	.balign 4096
	.globl ap_stacks
ap_stacks:
	.space 4096 * 65
	.balign 8
kernel_rsp:
	.quad 0
	.globl ap_ticket
ap_ticket:
	.long 0

/*
 * The AP trampoline, copied to AP_TRAMPOLINE (SIPI vector 0x09): real mode
 * -> protected mode -> long mode on the BSP's page tables.
 */
	.section .rodata
	.globl ap_tramp_start, ap_tramp_end
	.code16
ap_tramp_start:
	cli
	xor %ax, %ax
	mov %ax, %ds
	lgdtl AP_TRAMPOLINE + (ap_gdt_ptr - ap_tramp_start)
	mov %cr0, %eax
	or $1, %eax
	mov %eax, %cr0
	ljmpl $SEL_CODE32, $(AP_TRAMPOLINE + (ap_tramp32 - ap_tramp_start))
	.code32
ap_tramp32:
	mov $SEL_DATA, %ax
	mov %ax, %ds
	mov %ax, %ss
	mov $boot_pml4, %eax
	mov %eax, %cr3
	mov %cr4, %eax
	or $0x20, %eax
	mov %eax, %cr4
	mov $0xc0000080, %ecx
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax
	and $0x9fffffff, %eax
	mov %eax, %cr0
	ljmp $SEL_CODE64, $ap_entry64
	.balign 4
ap_gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt
ap_tramp_end:
	.code64
